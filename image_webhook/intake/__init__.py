"""Intake: who sent a request, its body, and whether it is a notification the service accepts."""
