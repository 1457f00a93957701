"""The one exception type the stages raise for bad input or bad settings.

Its message is a single line that names the file, image id or config key at fault; the
Snakemake script shim prints it and exits non-zero instead of showing a traceback.
"""


class WsssError(Exception):
    """A user-facing error: bad input data, a missing file or an invalid setting."""
