// Draws the ops dashboard's charts from the data the page carries
// (json_script "dashboard-charts"), with the vendored Chart.js.
(function () {
  "use strict";
  var source = document.getElementById("dashboard-charts");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  var payload = JSON.parse(source.textContent);
  var palette = ["#417690", "#e07b39", "#5a9e4b", "#b5485d", "#8d6cab", "#c9a227", "#3f8f8f"];
  payload.charts.forEach(function (spec) {
    var canvas = document.getElementById("chart-" + spec.key);
    if (!canvas) {
      return;
    }
    new Chart(canvas, {
      type: spec.kind,
      data: {
        labels: payload.days,
        datasets: spec.datasets.map(function (dataset, i) {
          var colour = palette[i % palette.length];
          return {
            label: dataset.label,
            // Amounts travel as exact decimal strings; drawing needs numbers.
            data: dataset.data.map(Number),
            backgroundColor: colour,
            borderColor: colour,
            borderWidth: spec.kind === "line" ? 2 : 0,
            pointRadius: spec.kind === "line" ? 0 : undefined,
            stepped: spec.kind === "line" ? "before" : false,
          };
        }),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: spec.stacked },
          y: { stacked: spec.stacked, beginAtZero: true, title: { display: true, text: spec.unit } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
  });
  document.body.dataset.chartsDrawn = String(payload.charts.length);
})();
