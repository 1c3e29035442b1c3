from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATUS_UNSPECIFIED: _ClassVar[ModelStatus]
    MODEL_STATUS_OK: _ClassVar[ModelStatus]
    MODEL_STATUS_ERROR: _ClassVar[ModelStatus]
    MODEL_STATUS_TIMEOUT: _ClassVar[ModelStatus]
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat
MODEL_STATUS_UNSPECIFIED: ModelStatus
MODEL_STATUS_OK: ModelStatus
MODEL_STATUS_ERROR: ModelStatus
MODEL_STATUS_TIMEOUT: ModelStatus

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "family", "architecture", "description", "working_size", "supports_hints", "supports_seed", "provenance", "ready", "reason", "paper", "metrics", "supports_reference", "needs_reference")
    ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WORKING_SIZE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_HINTS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_SEED_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PAPER_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    family: str
    architecture: str
    description: str
    working_size: int
    supports_hints: bool
    supports_seed: bool
    provenance: str
    ready: bool
    reason: str
    paper: str
    metrics: _struct_pb2.Struct
    supports_reference: bool
    needs_reference: bool
    def __init__(self, id: _Optional[str] = ..., family: _Optional[str] = ..., architecture: _Optional[str] = ..., description: _Optional[str] = ..., working_size: _Optional[int] = ..., supports_hints: _Optional[bool] = ..., supports_seed: _Optional[bool] = ..., provenance: _Optional[str] = ..., ready: _Optional[bool] = ..., reason: _Optional[str] = ..., paper: _Optional[str] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., supports_reference: _Optional[bool] = ..., needs_reference: _Optional[bool] = ...) -> None: ...

class Hint(_message.Message):
    __slots__ = ("x", "y", "color")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    color: str
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., color: _Optional[str] = ...) -> None: ...

class Options(_message.Message):
    __slots__ = ("format", "hints", "seed", "size")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    format: ImageFormat
    hints: _containers.RepeatedCompositeFieldContainer[Hint]
    seed: int
    size: int
    def __init__(self, format: _Optional[_Union[ImageFormat, str]] = ..., hints: _Optional[_Iterable[_Union[Hint, _Mapping]]] = ..., seed: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class ColorizeRequest(_message.Message):
    __slots__ = ("image", "filename", "model", "options", "reference")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    filename: str
    model: str
    options: Options
    reference: bytes
    def __init__(self, image: _Optional[bytes] = ..., filename: _Optional[str] = ..., model: _Optional[str] = ..., options: _Optional[_Union[Options, _Mapping]] = ..., reference: _Optional[bytes] = ...) -> None: ...

class ColorizeResponse(_message.Message):
    __slots__ = ("model", "image", "media_type", "latency_ms", "result_id", "url", "expires_at", "width", "height")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: bytes
    media_type: str
    latency_ms: float
    result_id: str
    url: str
    expires_at: float
    width: int
    height: int
    def __init__(self, model: _Optional[str] = ..., image: _Optional[bytes] = ..., media_type: _Optional[str] = ..., latency_ms: _Optional[float] = ..., result_id: _Optional[str] = ..., url: _Optional[str] = ..., expires_at: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ColorizeAllRequest(_message.Message):
    __slots__ = ("image", "filename", "models", "options", "reference")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    filename: str
    models: _containers.RepeatedScalarFieldContainer[str]
    options: Options
    reference: bytes
    def __init__(self, image: _Optional[bytes] = ..., filename: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ..., reference: _Optional[bytes] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ColorizeAllResponse(_message.Message):
    __slots__ = ("model", "status", "image", "media_type", "latency_ms", "result_id", "url", "expires_at", "error")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    model: str
    status: ModelStatus
    image: bytes
    media_type: str
    latency_ms: float
    result_id: str
    url: str
    expires_at: float
    error: Error
    def __init__(self, model: _Optional[str] = ..., status: _Optional[_Union[ModelStatus, str]] = ..., image: _Optional[bytes] = ..., media_type: _Optional[str] = ..., latency_ms: _Optional[float] = ..., result_id: _Optional[str] = ..., url: _Optional[str] = ..., expires_at: _Optional[float] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
