"""The playground: a Gradio UI over the public /v1 API, mounted at /ui on the Serve app
(`mount.py`) or served standalone against a remote endpoint (`sqlfoundry ui`). Importing this
package imports no Gradio; `blocks.py` does."""
