"""The app's own error pages; the extension's routes use them too when a browser asks."""

from __future__ import annotations

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
}


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def error_page(error: HTTPException) -> ResponseReturnValue:
        code = error.code or 500
        title = TITLES.get(code, error.name)
        return render_template("error.html", code=code, title=title, error=error), code
