"""WeChat: push parsing, developer-server crypto, and the customer-service send API."""
