from . import pymembus
