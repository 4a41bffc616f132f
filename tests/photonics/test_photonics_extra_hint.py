"""Without the photonics extra, the error says what to install and how (from the checkout)."""
import sys

import pytest

from surco.problems.photonics import devices, simulate


@pytest.mark.parametrize("call, module", [(devices._cc, "ceviche_challenges"),
                                          (simulate._imports, "ceviche")])
def test_missing_extra_names_the_install_command(monkeypatch, call, module):
    monkeypatch.setitem(sys.modules, module, None)     # makes `import module` fail
    with pytest.raises(ImportError, match=r'pip install -e "\.\[photonics\]"'):
        call()
