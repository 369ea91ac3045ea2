# Sphinx configuration of the dbfleet.memory docs site (scripts/docs.sh, `make docs`).
# Started from `antsibull-docs sphinx-init`, then made to build offline: no intersphinx
# (it downloads inventories at build time); the few ansible-core labels that antsibull-docs'
# pages link to are resolved from the table below instead.

project = "dbfleet.memory"
copyright = "dbfleet contributors, GPL-3.0-or-later"
title = "dbfleet.memory"
html_short_title = "dbfleet.memory"

extensions = ["sphinx_antsibull_ext"]

pygments_style = "ansible"
highlight_language = "YAML+Jinja"

html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

default_role = "any"
# Every reference must resolve: a broken link fails the build (sphinx-build -W).
nitpicky = True

# Labels of the ansible-core docs that antsibull-docs' generated pages refer to, with the
# page each one names. A label missing here still fails the build, so none is lost silently.
ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/latest/"
ANSIBLE_LABELS = {
    "ansible_configuration_settings": "reference_appendices/config.html",
    "common_return_values": "reference_appendices/common_return_values.html",
}


def _resolve_ansible_label(app, env, node, contnode):
    from docutils import nodes

    target = node.get("reftarget", "")
    if node.get("reftype") not in ("ref", "any") or target not in ANSIBLE_LABELS:
        return None
    ref = nodes.reference("", "", internal=False, refuri=ANSIBLE_DOCS + ANSIBLE_LABELS[target])
    ref += contnode
    return ref


def setup(app):
    app.connect("missing-reference", _resolve_ansible_label)
