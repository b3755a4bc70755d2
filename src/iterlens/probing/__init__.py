"""Probing, shared by LMs and CNNs.

A probed model is a :class:`~iterlens.probing.readout.Readout` plus an
:class:`~iterlens.probing.store.ActivationStore`; lenses, metrics and transfer work on that
pair alone.
"""
