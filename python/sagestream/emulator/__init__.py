"""A local SageMaker Runtime endpoint emulator (placeholder until implemented)."""
