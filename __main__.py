"""python -m deepinside: the `deepinside` command."""
import sys

from .cli import main

sys.exit(main())
