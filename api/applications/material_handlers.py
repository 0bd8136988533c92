"""(being written)"""

from sanic import Blueprint

bp = Blueprint("materials")
