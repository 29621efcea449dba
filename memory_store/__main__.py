import sys

from memory_store.cli import main

sys.exit(main())
