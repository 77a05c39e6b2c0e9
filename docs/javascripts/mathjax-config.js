// MathJax 3 configuration for pymdownx.arithmatex (generic mode). Must load before
// MathJax itself (assets/mathjax/tex-mml-chtml.js, copied into the site at build time).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
