"use strict";
const errors = [];
window.addEventListener("error", (event) => errors.push(String(event.message)));
const data = JSON.parse(document.getElementById("report-data").textContent);

function setup(section) {
  const files = data.images[Number(section.dataset.index)].files;
  const left = section.querySelector("select.left");
  const right = section.querySelector("select.right");
  const slider = section.querySelector("input.slider");
  const under = section.querySelector("img.under");
  const over = section.querySelector("img.over");
  const divider = section.querySelector(".divider");
  left.value = section.dataset.left;
  right.value = section.dataset.right;
  function update() {
    if (under.getAttribute("src") !== files[left.value][1]) under.src = files[left.value][1];
    if (over.getAttribute("src") !== files[right.value][1]) over.src = files[right.value][1];
    over.style.clipPath = "inset(0 0 0 " + slider.value + "%)";
    divider.style.left = slider.value + "%";
  }
  left.addEventListener("change", update);
  right.addEventListener("change", update);
  slider.addEventListener("input", update);
  update();
}

function settled(img) {
  if (img.complete) return Promise.resolve();
  return new Promise((done) => {
    img.addEventListener("load", done);
    img.addEventListener("error", done);
  });
}

async function selftest() {
  // Images as the page first showed them, then the first slider driven as a user would.
  const eager = Array.from(document.querySelectorAll("img")).filter((img) => img.loading !== "lazy");
  await Promise.all(eager.map(settled));
  const result = {errors: errors};
  result.loaded = eager.filter((img) => img.naturalWidth > 0).length;
  result.broken = eager.filter((img) => img.naturalWidth === 0).map((img) => img.getAttribute("src"));
  const section = document.querySelector("section.image");
  if (section) {
    const left = section.querySelector("select.left");
    const right = section.querySelector("select.right");
    const slider = section.querySelector("input.slider");
    const under = section.querySelector("img.under");
    const over = section.querySelector("img.over");
    left.value = "0";
    left.dispatchEvent(new Event("change"));
    right.value = String(right.options.length - 1);
    right.dispatchEvent(new Event("change"));
    slider.value = "25";
    slider.dispatchEvent(new Event("input"));
    await Promise.all([under, over].map(settled));
    result.left = left.options[left.selectedIndex].text;
    result.right = right.options[right.selectedIndex].text;
    result.under = under.getAttribute("src");
    result.over = over.getAttribute("src");
    result.clip = over.style.clipPath;
    result.divider = section.querySelector(".divider").style.left;
    result.size = [under.naturalWidth, under.naturalHeight, over.naturalWidth, over.naturalHeight];
  }
  result.ok = Boolean(section) && result.errors.length === 0 && result.broken.length === 0
    && result.size.every((side) => side > 0);
  document.getElementById("selftest").textContent = JSON.stringify(result);
  document.title = "selftest " + (result.ok ? "ok" : "failed");
}

document.querySelectorAll("section.image").forEach(setup);
if (location.hash === "#selftest") window.addEventListener("load", selftest);
