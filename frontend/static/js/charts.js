// Charts as progressive enhancement over data tables (the shared chart contract).
//
// Any page may render
//   <table class="chart-data" data-chart="bar|stacked|line|funnel" data-unit="...">
//     <caption>Title</caption>
//     <thead><tr><th>label column</th><th>series 1</th>...</tr></thead>
//     <tbody><tr><th>label</th><td data-value="12">12</td>...</tr></tbody></table>
// and this script draws it with Chart.js (self-hosted in /static/vendor, loaded only on
// pages that have such a table), places the chart before the table and folds the table
// into a <details> "Show as table". The cells' text is already formatted for the reader,
// so tooltips show it as is. One colour-blind-safe palette (Okabe-Ito), and every series
// also differs by pattern (bars) or dash and point shape (lines), so colour is never the
// only difference. Without the library (or without JavaScript) the tables stay as they are.
(function () {
  "use strict";

  var script = document.currentScript;
  var SHOW_TABLE = (script && script.dataset.showTable) || "Show as table";
  var LIBRARY = "/static/vendor/chart.umd.min.js";
  // Okabe & Ito (2008), in the order that keeps neighbours most distinct.
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  var DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3], [1, 2], [12, 6]];
  var POINTS = ["circle", "rect", "triangle", "rectRot", "crossRot", "star"];
  var loading = null;

  function library() {
    if (window.Chart) return Promise.resolve(window.Chart);
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = LIBRARY;
        tag.onload = function () { resolve(window.Chart); };
        tag.onerror = reject;
        document.head.appendChild(tag);
      });
    }
    return loading;
  }

  // A fill for series ``index``: its colour with a pattern of its own drawn over it.
  function pattern(index) {
    var colour = PALETTE[index % PALETTE.length];
    var kind = index % 5;
    if (kind === 0) return colour;
    var tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    var g = tile.getContext("2d");
    g.fillStyle = colour;
    g.fillRect(0, 0, 8, 8);
    g.strokeStyle = g.fillStyle = "rgba(255, 255, 255, 0.75)";
    g.lineWidth = 1.5;
    g.beginPath();
    if (kind === 1) { g.moveTo(0, 8); g.lineTo(8, 0); }
    else if (kind === 2) { g.arc(4, 4, 1.5, 0, 2 * Math.PI); g.fill(); }
    else if (kind === 3) { g.moveTo(0, 4); g.lineTo(8, 4); }
    else { g.moveTo(0, 0); g.lineTo(8, 8); g.moveTo(8, 0); g.lineTo(0, 8); }
    g.stroke();
    return g.createPattern(tile, "repeat");
  }

  function read(table) {
    var heads = table.querySelectorAll("thead th");
    var series = [];
    for (var i = 1; i < heads.length; i++) series.push({ name: heads[i].textContent.trim(), values: [], texts: [] });
    var labels = [];
    table.querySelectorAll("tbody tr").forEach(function (row) {
      var head = row.querySelector("th");
      labels.push(head ? head.textContent.trim() : "");
      row.querySelectorAll("td").forEach(function (cell, i) {
        if (!series[i]) return;
        var raw = cell.dataset.value;
        series[i].values.push(raw === undefined || raw === "" ? null : Number(raw));
        series[i].texts.push(cell.textContent.trim());
      });
    });
    return { labels: labels, series: series };
  }

  function config(kind, data, unit) {
    var line = kind === "line";
    var sideways = kind === "funnel" || (kind !== "line" && data.labels.length > 6);
    var datasets = data.series.map(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      return {
        label: s.name,
        data: s.values,
        texts: s.texts,
        borderColor: colour,
        backgroundColor: line ? colour : pattern(i),
        borderWidth: line ? 2 : 1,
        borderDash: line ? DASHES[i % DASHES.length] : [],
        pointStyle: POINTS[i % POINTS.length],
        pointRadius: line ? 3 : 0,
        spanGaps: true,
      };
    });
    var whole = data.series.every(function (s) {
      return s.values.every(function (v) { return v === null || Number.isInteger(v); });
    });
    var format = new Intl.NumberFormat(document.documentElement.lang || undefined);
    var value = {
      beginAtZero: true,
      stacked: kind === "stacked",
      title: { display: !!unit, text: unit },
      // Counts get whole ticks; every tick in the reader's number format.
      ticks: { precision: whole ? 0 : undefined, callback: function (v) { return format.format(v); } },
    };
    var label = { stacked: kind === "stacked" };
    return {
      type: line ? "line" : "bar",
      data: { labels: data.labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: sideways ? "y" : "x",
        scales: sideways ? { x: value, y: label } : { x: label, y: value },
        plugins: {
          legend: { display: datasets.length > 1, labels: { usePointStyle: line } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                return ctx.dataset.label + ": " + ctx.dataset.texts[ctx.dataIndex];
              },
            },
          },
        },
      },
    };
  }

  function draw(Chart, table) {
    var kind = table.dataset.chart;
    var data = read(table);
    if (!data.labels.length || !data.series.length) return;
    var caption = table.querySelector("caption");
    var title = caption ? caption.textContent.trim() : "";
    var figure = document.createElement("figure");
    figure.className = "chart chart-" + kind;
    var heading = document.createElement("figcaption");
    heading.textContent = title;
    var box = document.createElement("div");
    box.className = "chart-box";
    var rows = kind === "line" ? 8 : data.labels.length * Math.max(1, data.series.length / 2);
    box.style.height = Math.min(480, Math.max(200, 28 * rows + 60)) + "px";
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title + " (" + SHOW_TABLE.toLowerCase() + ")");
    box.appendChild(canvas);
    figure.appendChild(heading);
    figure.appendChild(box);
    var details = document.createElement("details");
    details.className = "chart-table";
    var summary = document.createElement("summary");
    summary.textContent = SHOW_TABLE;
    details.appendChild(summary);
    table.parentNode.insertBefore(figure, table);
    figure.appendChild(details);
    details.appendChild(table);
    new Chart(canvas, config(kind, data, table.dataset.unit || ""));
  }

  function enhance(root) {
    var tables = Array.prototype.filter.call(
      (root || document).querySelectorAll("table.chart-data"),
      function (table) { return !table.dataset.charted; }
    );
    if (!tables.length) return;
    tables.forEach(function (table) { table.dataset.charted = "pending"; });
    library().then(function (Chart) {
      tables.forEach(function (table) {
        table.dataset.charted = "true";
        draw(Chart, table);
      });
    }, function () {
      tables.forEach(function (table) { table.dataset.charted = "no-library"; });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { enhance(); });
  } else {
    enhance();
  }
  // Tables that arrive in an htmx swap are drawn too.
  document.addEventListener("htmx:afterSettle", function (event) { enhance(event.target); });
})();
