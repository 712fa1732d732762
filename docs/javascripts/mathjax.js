// Formulas: pymdownx.arithmatex (generic) wraps them in \( \) and \[ \] inside elements of
// class "arithmatex"; MathJax typesets only those, again after each instant page change.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]]},
  options: {ignoreHtmlClass: ".*", processHtmlClass: "arithmatex"},
};
if (typeof document$ !== "undefined") {
  document$.subscribe(() => window.MathJax.typesetPromise && window.MathJax.typesetPromise());
}
