"""Domain errors. Core code raises these; the CLI prints the message on one line and exits."""


class AttnvizError(Exception):
    """Base class: a problem the user can act on. ``str(err)`` is the one-line message."""

    exit_code = 1


class UsageError(AttnvizError):
    """Bad options or arguments."""

    exit_code = 2


class CheckpointError(AttnvizError):
    """A checkpoint file that is missing, damaged, foreign or incompatible."""


class ConfigError(AttnvizError):
    """A model configuration that cannot be built."""


class TokenizerError(AttnvizError):
    """A tokenizer that cannot be loaded or used."""


class DeviceError(AttnvizError):
    """A device that is not available."""


class InputError(AttnvizError):
    """Input text or files that cannot be processed."""


class RecordError(InputError, ValueError):
    """An alignment record (a dict or a JSON line) that does not describe an alignment.

    Also a ValueError, which is what reading a record raised before this class existed.
    """


class OutputError(AttnvizError):
    """An output path that cannot or must not be written."""


class OutputExistsError(OutputError):
    """An output file exists and the caller did not ask to replace it."""


class MissingModelFile(CheckpointError):
    """A model names a file it needs (a tokenizer model) that is not there.

    ``argument`` is the :func:`attnviz.load_model` argument that supplies it (``src_spm`` or
    ``tgt_spm``); the CLI turns it into its flag.
    """

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument
