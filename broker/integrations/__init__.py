"""Other programs' files: MCP client config files (``configure``), the command they run, and the
outputs of the Cognito stack in ``installer/``.
"""
