"""The Kubernetes edge: the only code that talks to the Kubernetes API.

Built on the official asyncio client, ``kubernetes.aio``; API errors become
:mod:`podidentity.errors` classes.
"""
