"""Errors of the edge<->cloud contract.

    GridgateError                   root of every error GridGate raises on purpose
    └── ContractError               something on the wire breaks the contract
        ├── BatchInvalid            the batch does not validate; `.errors` names each field
        ├── BatchTooLarge           body or rows over the contract's limits
        ├── EncodingError           unknown Content-Encoding, or a body that will not decompress
        ├── SignatureInvalid        the signature does not match the body under the key
        └── KeyInvalid              a key (text or file) that cannot be used

Each message names the thing that is wrong and, where there is one, the fix. Other packages root
their own trees (ProtocolError, StorageError, SyncError, ...) at GridgateError.
"""

from __future__ import annotations


class GridgateError(Exception):
    """Root of every error GridGate raises on purpose."""


class ContractError(GridgateError):
    """Something on the wire breaks the edge<->cloud contract."""


class BatchInvalid(ContractError):
    """A batch (or another contract model) failed validation.

    `errors` is a list of `(field_path, message)` pairs, e.g. `("readings.3.value", "...")`.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        shown = "; ".join(f"{path}: {message}" for path, message in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"invalid batch: {shown}{more}")


class BatchTooLarge(ContractError):
    """A body, its decompressed form, or its row count is over the contract's limits."""


class EncodingError(ContractError):
    """An unknown Content-Encoding, or a body that does not decompress."""


class SignatureInvalid(ContractError):
    """The signature is malformed or does not verify over the exact body bytes."""


class KeyInvalid(ContractError):
    """A key that cannot be used: malformed text, wrong type, or an unsafe key file."""
