"""The trainer's kit: session plans (Markdown, beside this file) and the room's doctor."""
