"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap its sanity venvs.

ansible-test fetches get-pip.py from a host this machine cannot reach (only the package
index is reachable). It runs the script with pip's install arguments, so: install pip
from the interpreter's bundled wheel (ensurepip), then let that pip install the exact
versions ansible-test asked for from the package index.
"""

import ensurepip
import subprocess
import sys

# get-pip.py understands these two; pip itself does not.
GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")

ensurepip.bootstrap()
pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + pip_args)
