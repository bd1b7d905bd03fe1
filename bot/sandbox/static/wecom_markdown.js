/* WeCom's markdown subset, and the few tags its text and text cards allow, rendered to safe HTML.
 *
 * Everything is HTML-escaped first; only the escaped forms of WeCom's own syntax are then turned back
 * into markup, so nothing a message contains can become a tag, an attribute or a script.
 * Subset (wecom.md §2): headings # to ######, **bold**, [text](url), `code`, > quote,
 * <font color="info|comment|warning">, line breaks.
 */
(function (global) {
  "use strict";

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  // Only web links and the page's own paths; javascript:, data: and the like stay as text.
  function safeUrl(escapedUrl) {
    return /^(https?:\/\/|\/)/i.test(escapedUrl);
  }

  function link(escapedUrl, innerHtml) {
    return '<a href="' + escapedUrl + '" target="_blank" rel="noopener noreferrer">' + innerHtml + "</a>";
  }

  var FONT = /&lt;font\s+color=(?:&quot;|&#39;)(info|comment|warning)(?:&quot;|&#39;)\s*&gt;([\s\S]*?)&lt;\/font&gt;/g;

  function inlineSpans(escaped) {
    return escaped
      .replace(FONT, '<span class="md-font md-font-$1">$2</span>')
      .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
      .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, function (whole, text, url) {
        return safeUrl(url) ? link(url, text) : whole;
      });
  }

  // `code` spans are taken out first so nothing inside them is interpreted.
  function inline(escaped) {
    var parts = escaped.split("`");
    var html = "";
    for (var i = 0; i < parts.length; i++) {
      var isCode = i % 2 === 1 && i < parts.length - 1;
      if (isCode) {
        html += "<code>" + parts[i] + "</code>";
      } else {
        html += (i % 2 === 1 ? "`" : "") + inlineSpans(parts[i]);
      }
    }
    return html;
  }

  function renderMarkdown(text) {
    var lines = escapeHtml(text).split(/\r?\n/);
    var html = [];
    var quote = [];
    function flushQuote() {
      if (quote.length) {
        html.push('<blockquote class="md-quote">' + quote.join("<br>") + "</blockquote>");
        quote = [];
      }
    }
    lines.forEach(function (line) {
      var heading = /^(#{1,6})\s+(.*)$/.exec(line);
      var quoted = /^&gt;\s?(.*)$/.exec(line);
      if (quoted) {
        quote.push(inline(quoted[1]));
        return;
      }
      flushQuote();
      if (heading) {
        var level = heading[1].length;
        html.push('<div class="md-h md-h' + level + '">' + inline(heading[2]) + "</div>");
      } else if (line.trim() === "") {
        html.push('<div class="md-gap"></div>');
      } else {
        html.push('<div class="md-line">' + inline(line) + "</div>");
      }
    });
    flushQuote();
    return html.join("");
  }

  // Text messages may carry <a href="...">links</a>; everything else is shown as typed.
  function renderText(text) {
    return escapeHtml(text)
      .replace(/&lt;a\s+href=&quot;([^&\s]*(?:&amp;[^&\s]*)*)&quot;\s*&gt;([\s\S]*?)&lt;\/a&gt;/g, function (whole, url, inner) {
        return safeUrl(url) ? link(url, inner) : whole;
      })
      .replace(/\r?\n/g, "<br>");
  }

  // Text card descriptions: <div class="gray|normal|highlight"> as WeCom styles them.
  function renderTextcardDescription(text) {
    return escapeHtml(text)
      .replace(/&lt;div\s+class=&quot;(gray|normal|highlight)&quot;\s*&gt;([\s\S]*?)&lt;\/div&gt;/g,
        '<div class="tc-$1">$2</div>')
      .replace(/\r?\n/g, "<br>");
  }

  global.WeComMarkdown = {
    escapeHtml: escapeHtml,
    renderMarkdown: renderMarkdown,
    renderText: renderText,
    renderTextcardDescription: renderTextcardDescription,
  };
})(window);
