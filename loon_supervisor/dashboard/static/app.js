// The dashboard's only script (no build step). Loaded from this server (CSP: no inline).
"use strict";
