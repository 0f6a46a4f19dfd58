"""The operator's web dashboard (issue 30), served by the deploy server under its rules
(docs/dashboard.md): login, overview, live logs over Server-Sent Events, doctor, deploys."""
