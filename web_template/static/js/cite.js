// "Cite this": without a configured site URL, the permalink and BibTeX use the address the page was opened at.
cx.mount("permalink", (a) => {
  "use strict";
  if (a.dataset.url) return;
  const url = location.href.split("#")[0];
  a.textContent = url;
  const bib = document.getElementById("bibtex");
  if (bib) bib.textContent = bib.textContent.replace(/\\url\{[^}]*\}/, () => "\\url{" + url + "}");
});
