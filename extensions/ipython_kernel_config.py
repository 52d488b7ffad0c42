"""Load workbench in every IPython kernel started with this profile.

Copy (or append) this file to ``$(ipython locate profile)/ipython_kernel_config.py`` — or to
``ipython_config.py`` for terminal IPython too. Kernels started from the "Workbench (MPI)"
kernelspec (``workbench kernel install``) do not need it: that spec passes ``--ext=workbench``.
"""

c = get_config()  # noqa: F821  (provided by IPython when it loads a config file)

c.InteractiveShellApp.extensions = ["workbench"]
