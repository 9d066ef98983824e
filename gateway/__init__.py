"""Secure document-exchange gateway for the CIS enforcement and RU-KZ supreme courts agreements.

Layers, dependencies pointing one way::

    model  <-  xml, rules, crypto  <-  store  <-  exchange  <-  web, jobs, cli
"""

__version__ = "0.1.0"

from gateway import logsafety as _logsafety

_logsafety.install()
