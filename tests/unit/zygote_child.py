"""What tests/unit/test_zygote.py has the zygote run: says where and how it runs."""

import os
import sys
import time

if __name__ == "__main__":
    what = sys.argv[1]
    if what == "sleep":
        time.sleep(60)
    elif what == "raise":
        raise RuntimeError("boom")
    print(os.getcwd(), os.environ.get("ZYGOTE_TEST", "-"), sys.stdin.read(), os.getpid())
    print(os.getpriority(os.PRIO_PROCESS, 0), os.umask(0))
    print("to stderr", file=sys.stderr)
    sys.exit(int(what))
