"""Where a deployment's service logs are read from, side by side: the interface every
source offers (base), the in-container files through exec and the archive endpoint (exec,
any engine), the host directory bound at the log dir (hostdir, the local fast path), and
the choice between them (choice)."""
