"""Run the sftdata command from a checkout: `python cli.py convert ...` (installed: `sftdata ...`)."""
from sftdata.cli import main

if __name__ == "__main__":
    main()
