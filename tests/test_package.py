import subprocess
import sys


def test_packages_import():
    import vlmscale

    assert vlmscale.__version__


def test_analysis_imports_without_torch():
    # analysis must stay usable by people without torch: importing it must not pull torch in.
    code = "import sys, analysis; assert 'torch' not in sys.modules, 'analysis imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
