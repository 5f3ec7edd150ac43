"""A notification command for tests: appends the notice on stdin, its environment's names and
the time to the file named first; exits with the status named second."""

import json
import os
import sys
import time

notice = json.loads(sys.stdin.read())
with open(sys.argv[1], "a", encoding="utf-8") as out:
    record = {"notice": notice, "environment": sorted(os.environ), "at_ns": time.time_ns()}
    out.write(json.dumps(record) + "\n")
sys.exit(int(sys.argv[2]))
