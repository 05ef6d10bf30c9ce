"""setup.cfg holds the metadata; this file adds the one thing setup.cfg cannot say next to
``packages = find:``: the top-level ``conf/`` tree ships inside the package as ``flexunet/conf``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "flexunet.conf"],
    package_dir={"": "src", "flexunet.conf": "conf"},
    package_data={"flexunet.conf": ["**/*.yaml"]},
)
