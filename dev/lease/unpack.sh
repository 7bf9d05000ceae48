# Source this on the lent machine (from the repository root) after carrying .ship/a.
mkdir -p /tmp/site /tmp/gl
for f in .ship/a/*.tar.xz; do tar -C /tmp/site -xJf "$f" || return 3; done
cp -r /tmp/site/site/. /tmp/site/ && rm -rf /tmp/site/site
# open3d's visualization imports plotly, which the image lacks and the DAG never uses.
sed -i 's/^from .draw_plotly import/if False: from .draw_plotly import/' /tmp/site/open3d/visualization/__init__.py
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .ship/a/whl/*.whl || return 4
for d in .ship/a/gl/*.deb; do dpkg -x "$d" /tmp/gl; done
export LD_LIBRARY_PATH=/tmp/gl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
