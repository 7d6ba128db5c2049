"""Carrier's bootstrap plugin: core actions, providers, evaluators and knowledge.

The entry point is :mod:`carrier_plugin_bootstrap.plugin`; the work lives in
:mod:`~carrier_plugin_bootstrap.actions`, :mod:`~carrier_plugin_bootstrap.providers`,
:mod:`~carrier_plugin_bootstrap.evaluators`, :mod:`~carrier_plugin_bootstrap.respond`
and :mod:`~carrier_plugin_bootstrap.knowledge`.
"""

__version__ = "0.1.0"
