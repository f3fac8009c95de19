"""``python -m producer ...`` is the ``annoflow`` command (how ``annoflow run`` starts its worker)."""

from producer.cli import main

main()
