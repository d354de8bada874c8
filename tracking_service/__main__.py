import sys

from tracking_service.server import main

sys.exit(main())
