"""sqlfoundry: fine-tune code LLMs for text-to-SQL (QLoRA+ and NEFTune) and serve them on Ray."""

__version__ = "0.1.0"
