"""AWS deployment of the lakehouse as code (AWS CDK v2, Python)."""
