"""Builds libexpertcast from the repository this folder belongs to (CMake) and
ships the shared library, and the bundled hardware/model profiles, inside the
package (expertcast/_native/).

Environment:
  EXPERTCAST_CUDA=AUTO|ON|OFF   CUDA backend (default AUTO: on when nvcc is found)
  EXPERTCAST_PREBUILT=PATH      bundle this libexpertcast.so instead of building
  CMAKE_BUILD_PARALLEL_LEVEL    build jobs (default 2)
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _copy_profiles(dest):
    src = os.path.join(REPO, "data", "profiles")
    os.makedirs(dest, exist_ok=True)
    for p in glob.glob(os.path.join(src, "*.json")):
        shutil.copy2(p, dest)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        native = os.path.join(self.build_lib, "expertcast", "_native")
        os.makedirs(native, exist_ok=True)
        target = os.path.join(native, "libexpertcast.so")
        prebuilt = os.environ.get("EXPERTCAST_PREBUILT")
        if prebuilt:
            shutil.copy2(prebuilt, target)
        else:
            if not os.path.isfile(os.path.join(REPO, "CMakeLists.txt")):
                sys.exit(f"expertcast: no CMakeLists.txt in {REPO}; build the package from the "
                         "repository's python/ folder, or set EXPERTCAST_PREBUILT")
            cuda = os.environ.get("EXPERTCAST_CUDA", "AUTO").upper()
            with tempfile.TemporaryDirectory(prefix="expertcast-build-") as bdir:
                jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")
                subprocess.check_call(["cmake", "-S", REPO, "-B", bdir,
                                       "-DCMAKE_BUILD_TYPE=Release", f"-DEC_CUDA={cuda}",
                                       "-DEC_BUILD_TESTS=OFF", "-DEC_BUILD_BENCH=OFF"])
                subprocess.check_call(["cmake", "--build", bdir, "-j", jobs, "--target",
                                       "expertcast_shared"])
                built = os.path.realpath(os.path.join(bdir, "libexpertcast.so"))
                shutil.copy2(built, target)
        _copy_profiles(os.path.join(native, "profiles"))


try:
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        """The wheel carries a native library: tag it for this platform."""

        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    extra = {"bdist_wheel": PlatformWheel}
except ImportError:  # pragma: no cover
    extra = {}

setup(cmdclass={"build_py": BuildWithLibrary, **extra})
