"""The zero-copy multipart parser: valid forms, and every malformed shape → 400."""

import pytest
from requests_toolbelt.multipart.encoder import MultipartEncoder

from kyma.edge.errors import InvalidRequest
from kyma.edge.multipart import parse_form


def encode(fields) -> tuple[bytes, str]:
    encoder = MultipartEncoder(fields=fields, boundary="XyZboundary123")
    return encoder.to_string(), encoder.content_type


def test_fields_and_files_are_parsed_without_copying():
    audio = bytes(range(256)) * 10 + b"\r\n--XyZ not a boundary\r\n"
    body, ctype = encode([("name", "brand-narrator"), ("file", ("ref.mp3", audio, "audio/mpeg"))])
    form = parse_form(body, ctype)
    (file,) = form["file"]
    assert bytes(file.data) == audio
    assert file.data.obj is body           # a view into the request body, not a copy
    assert (file.filename, file.content_type) == ("ref.mp3", "audio/mpeg")
    assert form["name"][0].text() == "brand-narrator"


def test_rfc5987_and_unicode_names_survive():
    body = (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nna\xc3\xafve \xe2\x9c\x93\r\n'
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''r%C3%A9f.wav\r\n"
            b"Content-Type: audio/wav\r\n\r\nRIFF\r\n--b--\r\n")
    form = parse_form(body, "multipart/form-data; boundary=b")
    assert form["name"][0].text() == "naïve ✓"
    assert form["file"][0].filename == "réf.wav"


def test_repeated_parts_are_all_kept():
    body, ctype = encode([("file", ("a.mp3", b"1", "audio/mpeg")), ("file", ("b.mp3", b"2", "audio/mpeg"))])
    assert [bytes(p.data) for p in parse_form(body, ctype)["file"]] == [b"1", b"2"]


@pytest.mark.parametrize("content_type", [
    "multipart/form-data",                        # missing boundary
    "multipart/form-data; boundary=",             # empty boundary
    "application/x-www-form-urlencoded",
    "text/plain", "", "multipart/form-data; boundary=" + "x" * 71,
])
def test_bad_content_types_are_400(content_type):
    with pytest.raises(InvalidRequest):
        parse_form(b"--x\r\n", content_type)


@pytest.mark.parametrize("body", [
    b"",                                                                   # empty
    b"no boundary anywhere",
    b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue",     # truncated: no closing boundary
    b"--b\r\nContent-Disposition: form-data; name=\"a\"",                  # headers never end
    b"--b\r\nbroken header line\r\n\r\nx\r\n--b--",                      # header without a colon
    b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",                 # no Content-Disposition
    b"--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b--",
    b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",          # no name
    b"--bgarbage\r\n",
])
def test_malformed_bodies_are_400(body):
    with pytest.raises(InvalidRequest):
        parse_form(body, "multipart/form-data; boundary=b")


def test_non_utf8_field_values_are_400_when_read_as_text():
    body = b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xff\xfe\r\n--b--\r\n"
    (part,) = parse_form(body, "multipart/form-data; boundary=b")["name"]
    with pytest.raises(InvalidRequest, match="UTF-8"):
        part.text()


def test_part_bombs_are_refused():
    body = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % i for i in range(50))
    with pytest.raises(InvalidRequest, match="Too many"):
        parse_form(body + b"--b--\r\n", "multipart/form-data; boundary=b")
