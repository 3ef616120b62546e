"""The applications over the library: the CLI, ``check``, the batch audit and its report, and ``serve``."""
