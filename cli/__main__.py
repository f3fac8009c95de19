"""``python -m cli ...`` is the ``annoflow`` command (how ``annoflow run`` starts its worker)."""

from cli.main import main

main()
