# Types for the parts of flask-smorest this project uses (the package ships none): its
# decorators hand the view back as it was, so the views keep their own types.
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

import flask
from apispec import APISpec
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

_View = TypeVar("_View", bound=Callable[..., Any])
class _Decorator(Protocol):
    def __call__(self, view: _View, /) -> _View: ...

class Blueprint(flask.Blueprint):
    ARGUMENTS_PARSER: ClassVar[FlaskParser]
    def __init__(self, name: str, import_name: str, *args: Any, description: str = ...,
                 **kwargs: Any) -> None: ...
    def route(self, rule: str, *, parameters: Any = ..., tags: Any = ...,
              **options: Any) -> Callable[[Any], Any]: ...
    def arguments(self, schema: Any, *, location: str = ..., content_type: str | None = ...,
                  required: bool = ..., description: str | None = ..., example: Any = ...,
                  examples: Any = ..., as_kwargs: bool = ..., arg_name: str | None = ...,
                  **kwargs: Any) -> _Decorator: ...
    def response(self, status_code: int, schema: Any = ..., *, content_type: str | None = ...,
                 description: str | None = ..., example: Any = ..., examples: Any = ...,
                 headers: Any = ...) -> _Decorator: ...
    def alt_response(self, status_code: int, response: Any = ..., *, schema: Any = ...,
                     content_type: str | None = ..., description: str | None = ...,
                     example: Any = ..., examples: Any = ..., headers: Any = ...,
                     success: bool = ...) -> _Decorator: ...
    @staticmethod
    def doc(**kwargs: Any) -> _Decorator: ...
    def etag(self, obj: _View) -> _View: ...

class Api:
    spec: APISpec
    ERROR_SCHEMA: ClassVar[Any]
    DEFAULT_ERROR_RESPONSE_NAME: ClassVar[str]
    def __init__(self, app: flask.Flask | None = ..., *, spec_kwargs: Any = ...) -> None: ...
    def register_blueprint(self, blp: Blueprint, *, parameters: Any = ...,
                           **options: Any) -> None: ...
    def _register_responses(self) -> None: ...
    def handle_http_exception(self, error: HTTPException) -> flask.Response: ...
