"""The Azure edge: the only code that talks to Azure (IMDS, Azure AD, ARM).

Each module covers one endpoint and turns its answers into :mod:`podidentity.errors`
classes, so the engines above never see an SDK's or an HTTP library's exceptions.
"""
