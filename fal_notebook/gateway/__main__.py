import sys

from .daemon import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C in the foreground: uvicorn has already shut down cleanly
    sys.exit(130)
