import sys

from suggestion_service.server import main

sys.exit(main())
