"""Fixtures that start the local SageMaker Runtime emulator (placeholder until implemented)."""
