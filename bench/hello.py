"""The framework's ceiling on this machine: a hello-world Flask app, served exactly like ours."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
