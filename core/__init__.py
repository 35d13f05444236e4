"""Framework-free core of the WeChat customer-service relay."""
