"""An archive's own root folder entry (``/`` or ``.``, as the SageMaker SDK writes when it repacks
model.tar.gz with the inference code) extracts as the target itself."""

import io
import tarfile

import pytest

from local_sagemaker.executor.archives import UnsafeArchiveError, safe_extract_tar


def _archive(path, members: list[tuple[str, bytes | None]]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("root", ["/", ".", "./"])
def test_the_root_folder_entry_is_the_target(tmp_path, root):
    archive = _archive(tmp_path / "model.tar.gz", [(root, None), ("code/inference.py", b"x")])
    safe_extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "code" / "inference.py").read_bytes() == b"x"


def test_a_file_with_no_name_is_still_refused(tmp_path):
    archive = _archive(tmp_path / "model.tar.gz", [("/", b"x")])
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        safe_extract_tar(archive, tmp_path / "out")
