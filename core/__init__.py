"""Framework-free core of the WeChat customer-service relay."""

__version__ = "0.2.0"
