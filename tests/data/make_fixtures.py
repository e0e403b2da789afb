#!/usr/bin/env python3
"""Writes the test fixtures in docs/ (good documents of every supported kind) and bad/ (every
kind of bad input). Run from this folder; the outputs are committed, this script documents them."""
import os, zipfile, unicodedata

os.makedirs("docs", exist_ok=True)
os.makedirs("bad", exist_ok=True)

def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))

# --- good documents ---------------------------------------------------------------------------
write("docs/windows-memo.txt", "윈도우 메모장으로 저장한 회의록입니다.\n형태소 분석기는 조사를 분리한다.\n예산은 다음 분기에 확정된다.\n".encode("cp949"))
write("docs/utf16-notes.txt", "\ufeff유니코드 UTF-16 문서도 읽을 수 있어야 한다.\nSpreadsheet exports often use UTF-16.\n".encode("utf-16-le") if False else b"\xff\xfe" + "유니코드 UTF-16 문서도 읽을 수 있어야 한다.\nSpreadsheet exports often use UTF-16.\n".encode("utf-16-le"))
write("docs/mac-decomposed.md", unicodedata.normalize("NFD", "# 맥에서 쓴 글\n\n맥은 한글을 자모로 분해해서 저장하곤 한다. 정규화가 필요하다.\n"))
write("docs/guide.html", """<!doctype html><html><head><meta charset="utf-8"><title>Retrieval guide</title>
<style>body { color: red }</style><script>var hidden = "never indexed";</script></head>
<body><h1>Hybrid retrieval</h1><p>Reciprocal rank fusion merges keyword and vector rankings.</p>
<h2>재순위화</h2><p>교차 인코더가 후보 문단을 다시 채점한다.</p></body></html>""")
write("docs/table.csv", "city,population\n서울,9400000\nBusan,3300000\n")
write("docs/settings.json", '{"theme": "dark", "language": "ko", "note": "설정 파일"}\n')
write("docs/tokenizer.rs", "/// Splits text into tokens.\npub fn tokenize(text: &str) -> Vec<&str> {\n    text.split_whitespace().collect()\n}\n")
write("docs/script.py", "def greet(name):\n    \"\"\"인사말을 돌려준다.\"\"\"\n    return f'안녕 {name}'\n")

def docx(path, paragraphs, broken=False):
    body = "".join(
        f'<w:p><w:pPr><w:pStyle w:val="{style}"/></w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>' if style
        else f'<w:p><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'
        for style, text in paragraphs)
    xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           f'<w:body>{body}</w:body></w:document>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("word/document.xml", xml)
    if broken:
        data = open(path, "rb").read()
        write(path, data[: len(data) // 2])

docx("docs/report.docx", [("Heading1", "분기 보고서"), (None, "매출은 전년 대비 12% 증가했습니다."),
                          ("Heading2", "Risks"), (None, "Supply of lithium cells &amp; separators is tight.")])
docx("bad/truncated.docx", [(None, "이 문서는 잘렸다." * 200)], broken=True)

def hwpx(path, paragraphs):
    ns = 'xmlns:hp="http://www.hancom.co.kr/hwpml/2011/paragraph" xmlns:hs="http://www.hancom.co.kr/hwpml/2011/section"'
    body = "".join(f"<hp:p><hp:run><hp:t>{t}</hp:t></hp:run></hp:p>" for t in paragraphs)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/hwp+zip")
        z.writestr("Contents/section0.xml", f'<?xml version="1.0" encoding="UTF-8"?><hs:sec {ns}>{body}</hs:sec>')
        z.writestr("Contents/section1.xml", f'<?xml version="1.0" encoding="UTF-8"?><hs:sec {ns}><hp:p><hp:run><hp:t>둘째 구역의 결론 문단.</hp:t></hp:run></hp:p></hs:sec>')

hwpx("docs/proposal.hwpx", ["한글 문서 형식 HWPX는 XML을 압축한 것이다.", "공공기관 문서는 흔히 한글로 작성된다."])

def pdf(pages, encrypt=False):
    """A minimal PDF with one Helvetica text line per page."""
    objs = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objs.append("<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    objs.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    if encrypt:
        objs.append("<< /Filter /Standard /V 1 /R 2 /O <" + "11" * 32 + "> /U <" + "22" * 32 + "> /P -44 >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    trailer = f"<< /Size {len(objs) + 1} /Root 1 0 R"
    if encrypt:
        trailer += f" /Encrypt {len(objs)} 0 R /ID [<{'ab' * 16}> <{'ab' * 16}>]"
    out += f"trailer\n{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out

write("docs/paper.pdf", pdf(["Transformers use self attention over tokens.", "Quantization shrinks weights to four bits."]))
write("bad/encrypted.pdf", pdf(["Secret content that needs a password."], encrypt=True))
write("bad/corrupt.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis is not a pdf body\n" + bytes(range(256)) * 4)

# --- bad inputs --------------------------------------------------------------------------------
write("bad/empty.txt", b"")
write("bad/binary.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 16)
write("bad/garbled.txt", bytes((i * 37) % 31 + 1 if i % 3 else 0x80 + (i % 64) for i in range(4000)))
print("fixtures written")
