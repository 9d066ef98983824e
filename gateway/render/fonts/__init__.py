"""DejaVu Sans fonts shipped with the gateway for Cyrillic PDF renditions (CIS Art. 19; SC Art. 11).

The files are copies of Debian's ``fonts-dejavu-core`` 2.37 (DejaVu 2.37). Their licence
(Bitstream Vera and Arev, permitting redistribution) is in ``LICENSE.txt`` beside them and must
travel with them. They load through :mod:`importlib.resources`, never from ``/usr/share``, so a
node renders the same PDF whatever fonts its host has.
"""
