"""Errors raised on bad user input.

Every message names what is wrong and where (file, line, qid or field), so the CLI can print it and exit with
code 2 instead of a traceback.
"""


class TDDetrInputError(ValueError):
    """Bad input from the user: a file, a flag, an annotation or a feature array that cannot be used."""
